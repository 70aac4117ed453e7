# One image for the five JMO services (and the topic-creation one-shot); deploy/docker-compose.yml
# picks what runs with `command: ["python", "-m", "jmo_<service>"]`.
FROM python:3.11-slim-bookworm

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PROJECT_ENVIRONMENT=/app/.venv

RUN pip install --no-cache-dir uv==0.13.9

WORKDIR /app
# Only the workspace members: .local/, .venv/ and tests stay out of the image.
COPY pyproject.toml uv.lock ./
COPY contracts contracts
COPY libs libs
COPY services services
COPY cli cli
RUN uv sync --frozen --no-dev && rm -rf /root/.cache

ENV PATH=/app/.venv/bin:$PATH
RUN useradd --system --uid 10001 --no-create-home jmo
USER jmo

CMD ["python", "-m", "jmo_registration"]
