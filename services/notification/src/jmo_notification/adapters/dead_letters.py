"""Parking a message whose notification failed in its topic's DLQ (``<topic>.dlq``), sealed again as
it travelled (its personal fields never in clear there), with the runtime's DLQ headers (:func:`jmo_runtime.messaging.dlq_headers`) and the notification's id."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from faststream.kafka import KafkaBroker

from jmo_contracts import Envelope, topics
from jmo_contracts.notification import NotificationFailed
from jmo_runtime.messaging import dlq_headers

REASON = "NOTIFICATION_FAILED"


class DeadLetters:
    """``park`` is the :data:`~jmo_notification.application.delivery.Parker` of the service: it
    publishes the source envelope to the DLQ of the topic it came from (``topic_of`` maps a base
    topic name to this deployment's, e.g. with its prefix) in its ``wire_form`` (the handler holds
    it opened: :meth:`jmo_runtime.Service.wire_form` seals it again)."""

    def __init__(self, broker: KafkaBroker, topic_of: Callable[[str], str], group_id: str, wire_form: Callable[[Envelope], Awaitable[Envelope]]) -> None:
        self._broker, self._topic_of, self._group_id, self._wire_form = broker, topic_of, group_id, wire_form

    async def park(self, source: Envelope, topic: str, failed: NotificationFailed) -> None:
        headers = dlq_headers(
            source.kafka_headers(), reason=REASON, detail=f"{failed.reason_code}: {failed.reason}", source=self._topic_of(topic), group_id=self._group_id,
        ) | {"jmo-notification-id": failed.notification_id}
        parked = await self._wire_form(source)
        await self._broker.publish(parked.to_json(), topic=self._topic_of(topics.dlq(topic)), key=source.stream_id.encode(), headers=headers)
