"""A journey is a graph: every step leads to a step, or the journey ends.

One set of rules for the engine (journeys.enrollment.next_step, journeys.dispatch), the builder
(journeys.builder_checks) and the JSON (journeys.definition), so the three never disagree on where a
customer goes next. A step here is anything with `position`, `kind` and `config`, and either the
model's `next_position` / `ends` or the JSON's `next` (a position, "end", or None).

- A step that does not branch goes to its `next` (a position, or "end"). Without one it goes to
  the next step by position, except that a customer never runs from one A/B arm into another
  (`fall_through`): that is how every journey read before graphs, so a linear journey exported
  before them imports unchanged.
- A condition step goes to its config's `then` or `else` (a position; "end" or left out: the end).
- An A/B split goes to one variant's `step`; an arm ends or rejoins through its steps' `next`, or
  (a journey written before graphs) at the split's `then`.

A graph has no loop: a step runs at most once per enrollment (a delivery is unique per enrollment and
step), so a loop would silently stop where it first came back. `loop_problem` names it instead.
"""

import dataclasses
from collections.abc import Sequence
from typing import Any

END = "end"
CONDITION, AB_SPLIT = "condition", "ab_split"


def declared_next(step: Any) -> int | str | None:
    """What a step says comes after it: a position, END, or None (not said: by position)."""
    if hasattr(step, "next_position"):
        return END if step.ends else step.next_position
    return getattr(step, "next", None)


@dataclasses.dataclass(frozen=True)
class Arm:
    """One arm of an A/B split: the steps at positions [start, end) (end None: to the journey's end).
    A customer in it who runs past its last step goes on at `join` (None: the journey ends)."""

    split: int
    start: int
    end: int | None
    join: int | None

    def __contains__(self, position: int) -> bool:
        return self.start <= position and (self.end is None or position < self.end)


def _position(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def split_join(split: Any, positions: Sequence[int]) -> int | None:
    """Where an A/B split's arms meet again: its config's "then", else the step after its last arm's
    first step (each arm is then one step, as the builder lays a split out), else nowhere."""
    config = split.config or {}
    if _position(config.get("then")) is not None:
        return config["then"]
    starts = [s for v in config.get("variants") or [] if isinstance(v, dict) and (s := _position(v.get("step")))]
    if not starts:
        return None
    return next((p for p in sorted(positions) if p > max(starts)), None)


def split_arms(steps: Sequence[Any]) -> list[Arm]:
    """Every A/B split's arms. Arm i runs from its first step up to the next arm's first step; the
    last arm up to the split's join (or to the journey's end when nothing comes after it)."""
    positions = [s.position for s in steps]
    arms = []
    for split in steps:
        if split.kind != AB_SPLIT:
            continue
        config = split.config or {}
        starts = sorted({v["step"] for v in config.get("variants") or []
                         if isinstance(v, dict) and _position(v.get("step")) and v["step"] > split.position})
        join = split_join(split, positions)
        for i, start in enumerate(starts):
            end = starts[i + 1] if i + 1 < len(starts) else (join if join is not None and join > start else None)
            arms.append(Arm(split=split.position, start=start, end=end, join=join))
    return arms


def fall_through(steps: Sequence[Any], position: int) -> int | None:
    """The position a step that names no next step leads to: the next step, except that a customer never
    runs from one A/B arm into another: past the end of their arm they go on where the split's arms
    meet again, or the journey ends."""
    target = next((s.position for s in sorted(steps, key=lambda s: s.position) if s.position > position), None)
    arms = split_arms(steps)
    for _ in range(len(arms) + 1):
        if target is None:
            return None
        leaving = [arm for arm in arms if position in arm and target not in arm and target != arm.join]
        if not leaving:
            return target
        target = max(leaving, key=lambda arm: (arm.split, arm.start)).join  # the innermost arm first
    return target


def plain_next(step: Any, steps: Sequence[Any]) -> int | None:
    """Where a step that does not branch leads: its `next`, else by position (None: the journey ends)."""
    declared = declared_next(step)
    if declared == END:
        return None
    if _position(declared) is not None:
        return declared  # type: ignore[return-value]
    return fall_through(steps, step.position)


def arm_target(value: Any) -> int | None:
    """A condition arm's target: a position, or None for the end ("end", or left out)."""
    return _position(value)


def successors(step: Any, steps: Sequence[Any]) -> list[int | None]:
    """Every position a step can lead to (None: the journey ends there), as the engine walks them."""
    config = step.config or {}
    if step.kind == CONDITION:
        return [arm_target(config.get("then")), arm_target(config.get("else"))]
    if step.kind == AB_SPLIT:
        return [_position(v.get("step")) for v in config.get("variants") or [] if isinstance(v, dict)]
    return [plain_next(step, steps)]


def first_position(steps: Sequence[Any]) -> int | None:
    """Customers enter at the lowest position."""
    return min((s.position for s in steps), default=None)


def loop(steps: Sequence[Any]) -> list[int] | None:
    """A loop in the graph as the positions around it (the first repeated at the end), or None."""
    by_position = {s.position: s for s in steps}
    state: dict[int, int] = {}  # 1: on the current path, 2: done
    path: list[int] = []

    def visit(position: int) -> list[int] | None:
        state[position] = 1
        path.append(position)
        for target in successors(by_position[position], steps):
            if target is None or target not in by_position:
                continue
            if state.get(target) == 1:
                return [*path[path.index(target):], target]
            if target not in state and (found := visit(target)):
                return found
        path.pop()
        state[position] = 2
        return None

    for position in sorted(by_position):
        if position not in state and (found := visit(position)):
            return found
    return None


def loop_problem(steps: Sequence[Any]) -> tuple[int, int, str] | None:
    """(the position that closes a loop, the position it goes back to, why that is refused), or None."""
    found = loop(steps)
    if found is None:
        return None
    words = " → ".join(str(p) for p in found)
    return found[-2], found[-1], (f"goes back to step {found[-1]}, making a loop (steps {words}): a step runs at most once "
                       "for a customer, so the loop would stop there. End it there (\"end\") or point it "
                       "at a step outside the loop")


def topological(steps: Sequence[Any]) -> list[Any]:
    """The steps so that each comes after every step that leads to it (the graph has no loop);
    steps nothing leads to keep their position order."""
    by_position = {s.position: s for s in steps}
    incoming = {p: 0 for p in by_position}
    for step in steps:
        for target in set(successors(step, steps)):
            if target in incoming and target != step.position:
                incoming[target] += 1
    ready = sorted(p for p, n in incoming.items() if n == 0)
    out = []
    while ready:
        position = ready.pop(0)
        out.append(by_position[position])
        for target in set(successors(by_position[position], steps)):
            if target in incoming and target != position:
                incoming[target] -= 1
                if incoming[target] == 0:
                    ready.append(target)
                    ready.sort()
    seen = {s.position for s in out}
    return out + [s for s in sorted(steps, key=lambda s: s.position) if s.position not in seen]


def reachable(steps: Sequence[Any]) -> set[int]:
    """The positions a customer can reach from the first step."""
    by_position = {s.position: s for s in steps}
    first = first_position(steps)
    if first is None:
        return set()
    seen, todo = {first}, [first]
    while todo:
        for target in successors(by_position[todo.pop()], steps):
            if target in by_position and target not in seen:
                seen.add(target)
                todo.append(target)
    return seen
