"""Exponential moving average of the trained weights, kept in float32."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn


class EMA:
    """shadow ← d·shadow + (1 − d)·param after every optimizer step.

    Args:
        parameters: {name: parameter} to average (``trainable_parameters(model)``).
        decay: d.
        warmup: use min(d, (1 + n)/(10 + n)) for update n, so the average is not pinned to
            the untrained start for ~1/(1 − d) steps.
    """

    def __init__(self, parameters: dict[str, nn.Parameter], decay: float, warmup: bool = True):
        self.parameters = parameters
        self.decay = decay
        self.warmup = warmup
        self.num_updates = 0
        self.shadow = {n: p.detach().float().clone() for n, p in parameters.items()}

    def current_decay(self) -> float:
        if not self.warmup:
            return self.decay
        return min(self.decay, (1 + self.num_updates) / (10 + self.num_updates))

    @torch.no_grad()
    def update(self) -> None:
        decay = self.current_decay()
        for name, parameter in self.parameters.items():
            self.shadow[name].lerp_(parameter.detach().float(), 1.0 - decay)
        self.num_updates += 1

    @contextmanager
    def applied(self) -> Iterator[None]:
        """Inside the block the parameters hold the averaged weights; restored after."""
        saved = {n: p.detach().clone() for n, p in self.parameters.items()}
        try:
            with torch.no_grad():
                for name, parameter in self.parameters.items():
                    parameter.copy_(self.shadow[name].to(parameter.dtype))
            yield
        finally:
            with torch.no_grad():
                for name, parameter in self.parameters.items():
                    parameter.copy_(saved[name])

    def state_dict(self) -> dict[str, object]:
        return {"num_updates": self.num_updates, "decay": self.decay, "warmup": self.warmup,
                "shadow": {n: t.clone() for n, t in self.shadow.items()}}

    def load_state_dict(self, state: dict[str, object]) -> None:
        shadow: dict[str, Tensor] = state["shadow"]  # type: ignore[assignment]
        missing = sorted(set(self.shadow) - set(shadow))
        unused = sorted(set(shadow) - set(self.shadow))
        if missing or unused:
            raise ValueError(
                f"EMA state does not match the trained parameters: {len(missing)} missing "
                f"(first: {missing[:3]}), {len(unused)} unknown (first: {unused[:3]})"
            )
        for name, tensor in shadow.items():
            self.shadow[name].copy_(tensor)
        self.num_updates = int(state["num_updates"])  # type: ignore[arg-type]
