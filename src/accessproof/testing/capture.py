"""Capture a handler's runs in memory and judge them with the engine's own verdict.

:func:`capture_runs` puts an in-memory exporter on a tracer provider and groups
the finished spans by Stripe event id. :func:`judge` feeds spans through the same
path the engine's receivers use (OTLP encoding, then evidence decoding) into a
real :class:`~accessproof.engine.engine.Engine` on an in-memory SQLite store, with
a fake clock moved past every deadline, so a test asserts what the engine in
production would conclude: proven, or which incident.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)

from accessproof.catalog import Catalog, load_catalog
from accessproof.conventions import Attr, Reason, RunState, Step
from accessproof.engine.clock import FakeClock
from accessproof.engine.engine import Engine
from accessproof.engine.evidence import evidence_from_request
from accessproof.engine.incidents import Incident
from accessproof.engine.model import Run
from accessproof.store.sqlite import SqliteStore

#: The transport label judged spans are counted under.
TRANSPORT = "memory"

CatalogSource = Catalog | Mapping[str, Any] | str | Path | None


@dataclass(frozen=True, slots=True)
class CapturedRun:
    """The spans one Stripe event's run left in this process, oldest first."""

    event_id: str
    spans: tuple[ReadableSpan, ...]

    @property
    def steps(self) -> list[str]:
        """The steps recorded, in the order their spans ended."""
        return [str((span.attributes or {}).get(Attr.STEP)) for span in self.spans]

    @property
    def drill(self) -> bool:
        """Whether the run is a drill."""
        return any((span.attributes or {}).get(Attr.DRILL) for span in self.spans)

    def step(self, name: Step | str) -> ReadableSpan | None:
        """The newest span of a step, or ``None`` when the step was not recorded."""
        found = [
            span
            for span in self.spans
            if (span.attributes or {}).get(Attr.STEP) == Step(name).value
        ]
        return found[-1] if found else None


@dataclass(frozen=True, slots=True)
class Judgement:
    """What the engine concluded about one run.

    ``state`` is ``proven``, ``incident`` (with ``reason`` and ``incident``),
    ``open`` (a step is still within its deadline, when judged with a
    ``after`` shorter than the deadlines) or ``superseded``.
    """

    event_id: str
    state: RunState
    reason: Reason | None
    incident: Incident | None
    run: Run

    @property
    def proven(self) -> bool:
        """Whether the engine proved the run."""
        return self.state is RunState.PROVEN

    @property
    def caught(self) -> bool:
        """Whether the engine raised an incident for the run."""
        return self.state is RunState.INCIDENT

    @property
    def summary(self) -> str:
        """The incident's one-line summary, or the state when there is none."""
        return self.incident.summary if self.incident else self.state.value


class CapturedRuns:
    """The spans finished on one tracer provider while capturing.

    >>> with capture_runs() as captured:
    ...     handle_webhook(body, header, tracer_provider=captured.tracer_provider)
    >>> captured.judge(catalog)["evt_1..."].proven
    True
    """

    def __init__(self, provider: TracerProvider, exporter: InMemorySpanExporter):
        self.tracer_provider = provider
        self._exporter = exporter

    def spans(self) -> list[ReadableSpan]:
        """Every finished span, accessproof's and others, in the order they ended."""
        return list(self._exporter.get_finished_spans())

    def runs(self) -> dict[str, CapturedRun]:
        """The runs seen so far, keyed by Stripe event id."""
        grouped: dict[str, list[ReadableSpan]] = defaultdict(list)
        for span in self.spans():
            event_id = (span.attributes or {}).get(Attr.EVENT_ID)
            if isinstance(event_id, str) and event_id:
                grouped[event_id].append(span)
        return {key: CapturedRun(key, tuple(spans)) for key, spans in grouped.items()}

    def __getitem__(self, event_id: str) -> CapturedRun:
        """The run of one event; raises :class:`KeyError` naming the runs seen."""
        runs = self.runs()
        if event_id not in runs:
            seen = ", ".join(sorted(runs)) or "none"
            raise KeyError(f"no spans for {event_id} (runs captured: {seen})")
        return runs[event_id]

    def judge(
        self, catalog: CatalogSource = None, *, after: float | None = None
    ) -> dict[str, Judgement]:
        """Judge every captured run; see :func:`judge`."""
        return judge(self.spans(), catalog, after=after)

    def clear(self) -> None:
        """Forget the spans captured so far."""
        self._exporter.clear()


@contextmanager
def capture_runs(
    tracer_provider: TracerProvider | None = None,
) -> Iterator[CapturedRuns]:
    """Capture finished spans in memory for the duration of the block.

    Without ``tracer_provider`` a private provider is made: pass
    ``captured.tracer_provider`` to :func:`accessproof.verify_and_open`,
    :func:`accessproof.resume` and friends. With the app's own SDK provider, an
    exporter is added to it and stops collecting when the block ends (an SDK
    provider cannot remove a processor). Spans ended in other processes are not
    captured: run the worker's code in the test process to judge it.
    """
    exporter = InMemorySpanExporter()
    provider = tracer_provider if tracer_provider is not None else TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    try:
        yield CapturedRuns(provider, exporter)
    finally:
        if tracer_provider is None:
            provider.shutdown()
        else:
            exporter.shutdown()


def judge(
    spans: Iterable[ReadableSpan],
    catalog: CatalogSource = None,
    *,
    after: float | None = None,
) -> dict[str, Judgement]:
    """Return the engine's verdict on each run among ``spans``, by event id.

    ``catalog`` is a :class:`~accessproof.catalog.Catalog`, a catalog mapping
    (as the YAML file would hold), a file path, or ``None`` for the built-in
    catalog (access judged from subscription status only). ``after`` is how many
    seconds after the last span the verdict is taken; by default past every
    deadline, so a step that never came is an incident, as in production once
    its deadline passed. No real time passes: the engine runs on a fake clock.
    """
    finished = list(spans)
    rules = _catalog(catalog)
    start = max((span.end_time or 0 for span in finished), default=0)
    clock = FakeClock(start or FakeClock().now_ns())

    with closing(SqliteStore(":memory:")) as store:
        engine = Engine(store, rules, clock=clock)
        decoded = evidence_from_request(encode_spans(finished))
        engine.ingest(decoded, TRANSPORT)
        clock.advance(
            _longest_wait(rules, decoded.evidence) if after is None else after
        )
        engine.tick()
        return {
            event_id: _judgement(store, event_id)
            for event_id in dict.fromkeys(e.event_id for e in decoded.evidence)
        }


def _catalog(source: CatalogSource) -> Catalog:
    if source is None:
        return Catalog.builtin()
    if isinstance(source, Catalog):
        return source
    if isinstance(source, str | Path):
        return load_catalog(source)
    return Catalog.model_validate(dict(source))


def _longest_wait(catalog: Catalog, evidence: Iterable[Any]) -> float:
    """Seconds past which every deadline of these runs has passed."""
    event_types = {str(e.attributes.get(Attr.EVENT_TYPE, "")) for e in evidence} or {""}
    longest = catalog.webhook_deadline
    for event_type in event_types:
        longest = max(longest, *catalog.rule_for(event_type).deadlines.values())
    return longest + 1.0


def _judgement(store: SqliteStore, event_id: str) -> Judgement:
    run = store.get_run(event_id)
    assert run is not None
    incidents = store.incidents_of(event_id)
    current = next((i for i in incidents if i.id == run.open_incident_id), None)
    return Judgement(event_id, run.state, run.reason, current, run)
