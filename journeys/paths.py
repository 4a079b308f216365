"""The builder's picture of a journey's graph: steps top to bottom, and where a condition or an A/B split
branches, its arms side by side as columns, each to its end or to the step where the arms meet again;
with the number of customers that reached each step (a delivery row was written for it).

Reads only; the shape comes from journeys.graph, so it is the path the engine takes."""

import dataclasses
from collections.abc import Sequence
from typing import Any

from django.db.models import Count

from .graph import AB_SPLIT, CONDITION, reachable, successors, topological
from .models import Delivery, Journey, Step


@dataclasses.dataclass
class Node:
    """A step, and for a branch its arms (each a column: a label and its nodes)."""

    step: Any
    reached: int = 0
    arms: list["Arm"] = dataclasses.field(default_factory=list)
    title: str = ""  # filled by the page (journeys.builder_checks.step_title)
    does: str = ""

    def walk(self):
        """This node and every node in its arms, depth first."""
        yield self
        for arm in self.arms:
            for node in arm.nodes:
                yield from node.walk()


@dataclasses.dataclass
class Arm:
    label: str
    nodes: list[Node]
    ends: bool  # the arm ends the journey (else it meets the others at the branch's join)
    goes_to: int | None = None  # a step already shown elsewhere that the arm jumps to


def _arm_labels(step: Any) -> list[str]:
    config = step.config or {}
    if step.kind == CONDITION:
        return ["Yes", "No"]
    variants = [v for v in config.get("variants") or [] if isinstance(v, dict)]
    total = sum(int(v.get("weight", 1)) for v in variants) or 1
    return [f"{chr(ord('A') + i)} · {round(100 * int(v.get('weight', 1)) / total)}%" for i, v in enumerate(variants)]


def _reach(start: int | None, steps: Sequence[Any], by_position: dict[int, Any]) -> set[int]:
    seen: set[int] = set()
    todo = [start] if start is not None else []
    while todo:
        position = todo.pop()
        if position in seen or position not in by_position:
            continue
        seen.add(position)
        todo.extend(t for t in successors(by_position[position], steps) if t is not None)
    return seen


def paths(steps: Sequence[Any], reached: dict[int, int] | None = None) -> list[Node]:
    """The journey from its first step, as nodes (see the module's docstring)."""
    steps = list(steps)
    by_position = {s.position: s for s in steps}
    order = {s.position: i for i, s in enumerate(topological(steps))}
    reached = reached or {}
    shown: set[int] = set()

    def walk(position: int | None, stop: int | None) -> tuple[list[Node], bool, int | None]:
        nodes: list[Node] = []
        while position is not None and position != stop:
            if position not in by_position:
                return nodes, True, None
            if position in shown:
                return nodes, False, position  # a jump to a step shown elsewhere
            step = by_position[position]
            shown.add(position)
            node = Node(step=step, reached=reached.get(step.pk, 0))
            nodes.append(node)
            targets = successors(step, steps)
            if step.kind in (CONDITION, AB_SPLIT):
                reaches = [_reach(t, steps, by_position) for t in targets]
                common = set.intersection(*reaches) if reaches else set()
                join = min(common, key=lambda p: order.get(p, 0)) if common else None
                for label, target in zip(_arm_labels(step), targets, strict=False):
                    # An arm runs to where the arms meet again, or (none) to where the arm around it ends.
                    arm_nodes, ends, goes_to = walk(target, join if join is not None else stop)
                    node.arms.append(Arm(label=label, nodes=arm_nodes, ends=ends, goes_to=goes_to))
                if join is None:  # nothing after the split: this path ends where all its arms end
                    return nodes, all(arm.ends for arm in node.arms), None
                position = join
            else:
                position = targets[0] if targets else None
        return nodes, position is None, None

    first = min(by_position) if by_position else None
    nodes, _, _ = walk(first, None)
    return nodes


def steps_reached(journey: Journey) -> dict[int, int]:
    """Step id → customers that reached it (a delivery row was written for the step)."""
    return dict(Delivery.objects.for_tenant(journey.tenant_id).filter(journey=journey).values("step_id")
                .annotate(n=Count("enrollment_id", distinct=True)).values_list("step_id", "n"))


def unreached_steps(steps: Sequence[Step]) -> list[Step]:
    """Steps no path leads to (the builder lists them under the paths, to be linked or removed)."""
    live = reachable(steps)
    return [s for s in steps if s.position not in live]
