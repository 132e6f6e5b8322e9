"""How a population's arrays are held and stepped: stacked on a leading axis for one vectorised
step (:class:`Stacked`), or each member's apart for a step of one member, run for each in turn
(:class:`Apart`: a lone trial, or members whose step cannot be vectorised). The training loop
(:mod:`tuner.train`) sees the same slots either way.

A member's arrays are its ``params``, ``opt_state``, ``hp`` (its continuous settings and rates)
and ``order`` (the rows of each step's batch).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import mlx.core as mx
from mlx.utils import tree_map

Step = Callable[..., tuple[Any, Any, Any, Any]]
Validate = Callable[[Any, Any], dict[str, mx.array]]


class Apart:
    """Each member's arrays apart, and the step and validation of one member run for each."""

    def __init__(self, members: Sequence[dict[str, Any]]) -> None:
        self.members = list(members)

    def __len__(self) -> int:
        return len(self.members)

    def step(self, fn: Step, x: mx.array, y: mx.array, index: int) -> tuple[list, list]:
        """Step each member with its batch ``index``; return their losses and rates."""
        out = []
        for member in self.members:
            rows = member["order"][index]
            loss, lr, member["params"], member["opt_state"] = fn(
                member["params"], member["opt_state"], member["hp"], x[rows], y[rows]
            )
            out.append((loss, lr))
        mx.eval(out, [(member["params"], member["opt_state"]) for member in self.members])
        return [loss.item() for loss, _ in out], [lr.item() for _, lr in out]

    def validate(self, fn: Validate) -> dict[str, list[float]]:
        """Each member's validation values, by name."""
        return one_by_one(self, fn)

    def slot(self, slot: int) -> tuple[Any, Any]:
        """The weights and optimizer state in ``slot``."""
        return self.members[slot]["params"], self.members[slot]["opt_state"]

    def reslot(self, slots: list[int | None], running: list[bool]) -> list[int | None]:
        """Keep the slots that are still running; return the members the slots now hold."""
        keep = [slot for slot, runs in enumerate(running) if runs]
        self.members = [self.members[slot] for slot in keep]
        return [slots[slot] for slot in keep]


class Stacked:
    """The members' arrays stacked on a leading axis, and a step that takes them all at once."""

    def __init__(self, members: Sequence[dict[str, Any]]) -> None:
        self.arrays = {
            name: tree_map(lambda *leaves: mx.stack(leaves), *(m[name] for m in members))
            for name in members[0]
        }

    def __len__(self) -> int:
        return self.arrays["order"].shape[0]

    def step(self, fn: Step, x: mx.array, y: mx.array, index: int) -> tuple[list, list]:
        """Step every slot with its batch ``index``; return the slots' losses and rates."""
        arrays = self.arrays
        rows = arrays["order"][:, index]
        loss, lr, params, opt_state = fn(
            arrays["params"], arrays["opt_state"], arrays["hp"], x[rows], y[rows]
        )
        mx.eval(loss, lr, params, opt_state)
        arrays["params"], arrays["opt_state"] = params, opt_state
        return loss.tolist(), lr.tolist()

    def validate(self, fn: Validate) -> dict[str, list[float]]:
        """Each slot's validation values, by name, from ``fn`` vectorised over the stack."""
        values = fn(self.arrays["params"], self.arrays["opt_state"])
        mx.eval(values)
        return {name: value.tolist() for name, value in values.items()}

    def slot(self, slot: int) -> tuple[Any, Any]:
        """The weights and optimizer state in ``slot``."""
        member = self.member(slot)
        return member["params"], member["opt_state"]

    def member(self, slot: int) -> dict[str, Any]:
        """The arrays of the member in ``slot``, apart from the stack."""
        return {name: tree_map(lambda a: a[slot], self.arrays[name]) for name in self.arrays}

    def reslot(self, slots: list[int | None], running: list[bool]) -> list[int | None]:
        """Give the slots that stopped running copies of a running one, halving the stack while
        the running members fit in half of it, so that a stack of K takes at most log2(K) + 1
        shapes; return the members the slots now hold (None for a copy)."""
        kept = [slot for slot, runs in enumerate(running) if runs]
        size = len(slots)
        while size > 1 and -(-size // 2) >= len(kept):
            size = -(-size // 2)
        take = kept + [kept[0]] * (size - len(kept))
        if size == len(slots):
            copies = iter(take[len(kept) :])
            take = [slot if slot in kept else next(copies) for slot in range(size)]
        index = mx.array(take)
        for name in self.arrays:
            self.arrays[name] = tree_map(lambda a: a[index], self.arrays[name])
        seen: set[int] = set()
        moved: list[int | None] = []
        for slot in take:
            moved.append(slots[slot] if slot in kept and slot not in seen else None)
            seen.add(slot)
        return moved


def one_by_one(stack: Apart | Stacked, fn: Validate) -> dict[str, list[float]]:
    """Each slot's validation values, by name, from ``fn`` of one member run for each slot."""
    values = [fn(*stack.slot(slot)) for slot in range(len(stack))]
    mx.eval(values)
    return {name: [value[name].item() for value in values] for name in values[0]}
