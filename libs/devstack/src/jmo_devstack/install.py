"""Idempotent installation of the stack's tools into ``.local/``.

Each step hashes its inputs into a stamp file and does nothing when the stamp matches and the
output exists; otherwise it runs the real tool with its output streaming to the terminal, so a
first install shows Maven's downloads and Go's build progress.
"""

from __future__ import annotations

import filecmp
import hashlib
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from .paths import StackPaths

Say = Callable[[str], None]


class InstallError(RuntimeError):
    """A tool needed by the stack is missing or its build failed."""


def _digest(files: list[Path]) -> str:
    h = hashlib.sha256()
    for f in sorted(files):
        h.update(f.name.encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


def _fresh(stamp: Path, digest: str, output: Path) -> bool:
    return output.exists() and stamp.is_file() and stamp.read_text().strip() == digest


def _run(cmd: list[str], cwd: Path, say: Say) -> None:
    if shutil.which(cmd[0]) is None:
        raise InstallError(f"{cmd[0]!r} is not on PATH; it is needed to install the embedded stack")
    say(f"$ {' '.join(cmd)}")
    result = subprocess.run(cmd, cwd=cwd, check=False)
    if result.returncode != 0:
        raise InstallError(f"{' '.join(cmd)} failed with exit code {result.returncode}")


def install_kafka(paths: StackPaths, say: Say = print) -> bool:
    """Resolve the Kafka jars of deploy/kafka/pom.xml into .local/kafka/libs. True if work was done."""
    stamp = paths.kafka_libs.parent / "libs.stamp"
    digest = _digest([paths.kafka_pom])
    if _fresh(stamp, digest, paths.kafka_libs) and any(paths.kafka_libs.glob("kafka_2.13-*.jar")):
        say(f"Kafka jars up to date in {paths.kafka_libs}")
        return False
    # Copy into a fresh directory, then swap, so a stale jar from an older pom never lingers and a
    # running broker keeps its classpath until the swap.
    staging = paths.kafka_libs.with_name("libs.new")
    shutil.rmtree(staging, ignore_errors=True)
    _run(
        [
            "mvn", "-B", "-f", str(paths.kafka_pom), "dependency:copy-dependencies",
            "-DincludeScope=runtime", f"-DoutputDirectory={staging}",
        ],
        paths.root,
        say,
    )
    if not any(staging.glob("kafka_2.13-*.jar")):
        raise InstallError(f"maven finished but no kafka_2.13 jar is in {staging}")
    if _same_files(staging, paths.kafka_libs):
        # Identical jars: keep the directory a running broker may still load classes from.
        shutil.rmtree(staging)
    else:
        old = paths.kafka_libs.with_name("libs.old")
        shutil.rmtree(old, ignore_errors=True)
        if paths.kafka_libs.exists():
            paths.kafka_libs.rename(old)
        staging.rename(paths.kafka_libs)
        shutil.rmtree(old, ignore_errors=True)
    stamp.write_text(digest + "\n")
    say(f"Kafka jars installed in {paths.kafka_libs}")
    return True


def _same_files(a: Path, b: Path) -> bool:
    if not b.is_dir():
        return False
    names = sorted(p.name for p in a.iterdir())
    if names != sorted(p.name for p in b.iterdir()):
        return False
    return all(filecmp.cmp(a / n, b / n, shallow=False) for n in names)


#: Source fixes applied to a vendored copy of FerretDB before building (module path, file, old, new).
#: FerretDB v1.24.2's SQLite backend builds its unique _id index on `_ferretdb_sjson->"_id"` but
#: filters, updates and deletes by `_ferretdb_sjson->'$._id'`; SQLite does not match the two, so
#: every look-up by _id scanned the table (about 40 us per row). Making them the same expression
#: lets SQLite use the index.
#: And its SQLite backend took the `_id` index only for a filter of `_id` alone: `{_id: x, applied:
#: [...]}` (a write only over the document as read) scanned the table. Every handler applies the
#: whole filter again to what the backend returns (`common.FilterIterator` / `FilterDocument`), so
#: the backend may narrow by the `_id` equality of any filter that names `_id` once (top-level keys
#: are ANDed); explain then says `filterPushdown: true` for it. The same for `_id: {$in: [...]}` of
#: strings or ObjectIDs (up to 1000), which the batch tools use to fetch a page of commits at once.
#: And its update, findAndModify and delete find the documents, then write them, with nothing in
#: between to stop another such command doing the same: two conditional writes of one document
#: ({_id, applied}) could both match it and the second silently replace the first (a lost profile
#: update; a lost $inc of a quota). They are serialised per collection, which gives MongoDB's
#: atomicity of a write to one document (SQLite has a single writer anyway).
#: And it tracks the lifetime of every iterator, transaction and cursor it opens (a pprof profile
#: entry with a stack trace, and a finalizer that panics, taking the server down, should one never
#: be closed): a leak check for its own tests that cost ~9 % of its CPU per command. Off here.
FERRETDB_PATCHES: tuple[tuple[str, str, str], ...] = (
    (
        "github.com/FerretDB/FerretDB/internal/backends/sqlite/metadata/metadata.go",
        "IDColumn = DefaultColumn + \"->'$._id'\"",
        "IDColumn = DefaultColumn + `->\"_id\"`",
    ),
    (
        "github.com/FerretDB/FerretDB/internal/backends/sqlite/collection.go",
        "\tif params.Filter.Len() == 1 {\n\t\tv, _ := params.Filter.Get(\"_id\")",
        "\tif namesIDOnce(params.Filter) {\n\t\tv, _ := params.Filter.Get(\"_id\")",
    ),
    (
        "github.com/FerretDB/FerretDB/internal/backends/sqlite/collection.go",
        "// check interfaces\nvar (\n\t_ backends.Collection = (*collection)(nil)\n)\n",
        "// check interfaces\nvar (\n\t_ backends.Collection = (*collection)(nil)\n)\n\n"
        "// namesIDOnce reports whether filter has exactly one top-level _id key (JMO patch: its equality\n"
        "// narrows the query by the _id index; the handler applies the whole filter afterwards).\n"
        "func namesIDOnce(filter *types.Document) bool {\n\tn := 0\n\tfor _, k := range filter.Keys() {\n"
        "\t\tif k == \"_id\" {\n\t\t\tn++\n\t\t}\n\t}\n\n\treturn n == 1\n}\n",
    ),
    (
        "github.com/FerretDB/FerretDB/internal/backends/sqlite/collection.go",
        "\t\t\twhereClause = fmt.Sprintf(` WHERE %s = ?`, metadata.IDColumn)\n"
        "\t\t\targs = []any{string(must.NotFail(sjson.MarshalSingleValue(v)))}\n\t\t}\n\t}\n\n\tq += whereClause",
        "\t\t\twhereClause = fmt.Sprintf(` WHERE %s = ?`, metadata.IDColumn)\n"
        "\t\t\targs = []any{string(must.NotFail(sjson.MarshalSingleValue(v)))}\n"
        "\t\tcase *types.Document:\n"
        "\t\t\tif clause, ids, ok := idIn(v.(*types.Document)); ok {\n\t\t\t\twhereClause, args = clause, ids\n\t\t\t}\n"
        "\t\t}\n\t}\n\n\tq += whereClause",
    ),
    (
        "github.com/FerretDB/FerretDB/internal/backends/sqlite/collection.go",
        "\t\t\tfilterPushdown = true\n\t\t\twhereClause = fmt.Sprintf(` WHERE %s = ?`, metadata.IDColumn)\n"
        "\t\t\targs = []any{string(must.NotFail(sjson.MarshalSingleValue(v)))}\n\t\t}\n",
        "\t\t\tfilterPushdown = true\n\t\t\twhereClause = fmt.Sprintf(` WHERE %s = ?`, metadata.IDColumn)\n"
        "\t\t\targs = []any{string(must.NotFail(sjson.MarshalSingleValue(v)))}\n"
        "\t\tcase *types.Document:\n"
        "\t\t\tif clause, ids, ok := idIn(v.(*types.Document)); ok {\n\t\t\t\tfilterPushdown = true\n\t\t\t\twhereClause, args = clause, ids\n\t\t\t}\n"
        "\t\t}\n",
    ),
    (
        "github.com/FerretDB/FerretDB/internal/backends/sqlite/collection.go",
        "// check interfaces\nvar (\n\t_ backends.Collection = (*collection)(nil)\n)\n",
        "// check interfaces\nvar (\n\t_ backends.Collection = (*collection)(nil)\n)\n\n"
        "// idIn is the WHERE clause for an _id condition {$in: [...]} of up to 1000 strings or ObjectIDs\n"
        "// (JMO patch: served by the _id index like an equality; the handler applies the whole filter\n"
        "// afterwards); ok is false for any other condition.\n"
        "func idIn(cond *types.Document) (string, []any, bool) {\n"
        "\tif cond.Len() != 1 {\n\t\treturn \"\", nil, false\n\t}\n\n"
        "\tv, err := cond.Get(\"$in\")\n\tif err != nil {\n\t\treturn \"\", nil, false\n\t}\n\n"
        "\tarr, ok := v.(*types.Array)\n\tif !ok || arr.Len() == 0 || arr.Len() > 1000 {\n\t\treturn \"\", nil, false\n\t}\n\n"
        "\targs := make([]any, 0, arr.Len())\n\tfor i := 0; i < arr.Len(); i++ {\n\t\te := must.NotFail(arr.Get(i))\n"
        "\t\tswitch e.(type) {\n\t\tcase string, types.ObjectID:\n"
        "\t\t\targs = append(args, string(must.NotFail(sjson.MarshalSingleValue(e))))\n"
        "\t\tdefault:\n\t\t\treturn \"\", nil, false\n\t\t}\n\t}\n\n"
        "\tplaceholders := strings.TrimSuffix(strings.Repeat(\"?, \", len(args)), \", \")\n\n"
        "\treturn fmt.Sprintf(` WHERE %s IN (%s)`, metadata.IDColumn, placeholders), args, true\n}\n",
    ),
    (
        "github.com/FerretDB/FerretDB/internal/util/resource/resource.go",
        "// Track tracks the lifetime of an object until Untrack is called on it.\n",
        "// trackLifetimes is false in this build (JMO patch): FerretDB records a stack trace (pprof\n"
        "// profile) and sets a finalizer that panics, for every iterator, transaction and cursor it\n"
        "// opens; that leak check of its own test suite cost ~9 % of the server's CPU per command.\n"
        "const trackLifetimes = false\n\n"
        "// Track tracks the lifetime of an object until Untrack is called on it.\n",
    ),
    (
        "github.com/FerretDB/FerretDB/internal/util/resource/resource.go",
        "func Track(obj any, token *Token) {\n",
        "func Track(obj any, token *Token) {\n\tif !trackLifetimes {\n\t\treturn\n\t}\n\n",
    ),
    (
        "github.com/FerretDB/FerretDB/internal/util/resource/resource.go",
        "func Untrack(obj any, token *Token) {\n",
        "func Untrack(obj any, token *Token) {\n\tif !trackLifetimes {\n\t\treturn\n\t}\n\n",
    ),
    (
        "github.com/FerretDB/FerretDB/internal/handler/msg_update.go",
        "// MsgUpdate implements `update` command.\n",
        "// matchThenWrite serialises, per collection, the commands that find documents and then write\n"
        "// them (update, findAndModify, delete). MongoDB applies such a write to a document atomically;\n"
        "// without this two of them could both match a document and the second overwrite the first\n"
        "// (JMO patch).\n"
        "var matchThenWrite sync.Map\n\n"
        "func lockCollection(db, coll string) func() {\n"
        "\tm, _ := matchThenWrite.LoadOrStore(db+\".\"+coll, new(sync.Mutex))\n"
        "\tmu := m.(*sync.Mutex)\n\tmu.Lock()\n\n\treturn mu.Unlock\n}\n\n"
        "// MsgUpdate implements `update` command.\n",
    ),
    (
        "github.com/FerretDB/FerretDB/internal/handler/msg_update.go",
        "import (\n\t\"context\"\n\t\"fmt\"\n",
        "import (\n\t\"context\"\n\t\"fmt\"\n\t\"sync\"\n",
    ),
    (
        "github.com/FerretDB/FerretDB/internal/handler/msg_update.go",
        "func (h *Handler) updateDocument(ctx context.Context, params *common.UpdateParams) (int32, int32, *types.Array, error) {\n",
        "func (h *Handler) updateDocument(ctx context.Context, params *common.UpdateParams) (int32, int32, *types.Array, error) {\n"
        "\tdefer lockCollection(params.DB, params.Collection)()\n\n",
    ),
    (
        "github.com/FerretDB/FerretDB/internal/handler/msg_findandmodify.go",
        "func (h *Handler) findAndModifyDocument(ctx context.Context, params *common.FindAndModifyParams) (*findAndModifyResult, error) {\n",
        "func (h *Handler) findAndModifyDocument(ctx context.Context, params *common.FindAndModifyParams) (*findAndModifyResult, error) {\n"
        "\tdefer lockCollection(params.DB, params.Collection)()\n\n",
    ),
    (
        "github.com/FerretDB/FerretDB/internal/handler/msg_delete.go",
        "\t\td, err = h.execDelete(connCtx, c, &p)\n",
        "\t\tunlock := lockCollection(params.DB, params.Collection)\n\t\td, err = h.execDelete(connCtx, c, &p)\n\t\tunlock()\n",
    ),
)


def _patch_vendored(vendor: Path) -> None:
    for rel, old, new in FERRETDB_PATCHES:
        target = vendor / rel
        text = target.read_text()
        if old not in text:
            raise InstallError(f"FerretDB patch no longer applies to {rel}: review FERRETDB_PATCHES")
        target.chmod(0o644)
        target.write_text(text.replace(old, new))


def ferretdb_digest(sources: list[Path]) -> str:
    """What a FerretDB build depends on: deploy/ferretdb's files and the patches applied."""
    return hashlib.sha256((_digest(sources) + repr(FERRETDB_PATCHES)).encode()).hexdigest()


def install_ferretdb(paths: StackPaths, say: Say = print) -> bool:
    """Build .local/bin/ferretdb from deploy/ferretdb (with FERRETDB_PATCHES) when it is missing or changed."""
    sources = [p for p in paths.ferretdb_src.iterdir() if p.is_file()]
    stamp = paths.ferretdb_bin.with_name("ferretdb.stamp")
    digest = ferretdb_digest(sources)
    if _fresh(stamp, digest, paths.ferretdb_bin):
        say(f"FerretDB up to date at {paths.ferretdb_bin}")
        return False
    paths.ferretdb_bin.parent.mkdir(parents=True, exist_ok=True)
    _run(["go", "mod", "download", "-x"], paths.ferretdb_src, say)
    vendor = paths.ferretdb_src / "vendor"
    shutil.rmtree(vendor, ignore_errors=True)
    _run(["go", "mod", "vendor"], paths.ferretdb_src, say)
    try:
        _patch_vendored(vendor)
        tmp = paths.ferretdb_bin.with_name("ferretdb.new")
        _run(["go", "build", "-mod=vendor", "-v", "-o", str(tmp), "."], paths.ferretdb_src, say)
    finally:
        shutil.rmtree(vendor, ignore_errors=True)
    tmp.replace(paths.ferretdb_bin)  # atomic: a running server keeps its old inode
    stamp.write_text(digest + "\n")
    say(f"FerretDB built at {paths.ferretdb_bin}")
    return True


def install_all(paths: StackPaths, say: Say = print) -> None:
    """Install every tool the embedded stack needs (Kafka jars, FerretDB)."""
    install_kafka(paths, say)
    install_ferretdb(paths, say)


def missing_tools(paths: StackPaths) -> list[str]:
    """What is not installed yet (without building anything)."""
    missing = []
    if not any(paths.kafka_libs.glob("kafka_2.13-*.jar")):
        missing.append(f"Kafka jars in {paths.kafka_libs}")
    if not paths.ferretdb_bin.exists():
        missing.append(f"FerretDB binary {paths.ferretdb_bin}")
    return missing
