"""The one training budget every learned model of the accuracy benchmarks gets: a CPU-time budget (a Trainer
callback for EmbSum, a clock the NRMS loop checks) and the optimiser settings they share."""

from __future__ import annotations

import dataclasses
import time

from transformers import TrainerCallback


class TimeBudget(TrainerCallback):
    """
    A CPU-time budget (seconds of this process) for one training loop: `step()` after every optimiser step says
    whether it is spent, and as a Trainer callback it stops training then. `cpu_seconds` / `wall_seconds` / `steps`
    hold the training time and steps up to the last step.
    """

    def __init__(self, seconds: float, anneal: bool = False):
        self.seconds = seconds
        self.anneal = anneal
        self._cpu_start = self._wall_start = 0.0
        self.cpu_seconds = self.wall_seconds = 0.0
        self.steps = 0

    def start(self) -> None:
        self._cpu_start, self._wall_start = time.process_time(), time.perf_counter()
        self.cpu_seconds = self.wall_seconds = 0.0
        self.steps = 0

    def step(self) -> bool:
        self.steps += 1
        self.cpu_seconds = time.process_time() - self._cpu_start
        self.wall_seconds = time.perf_counter() - self._wall_start
        return self.cpu_seconds >= self.seconds

    def lr_factor(self) -> float:
        """With `anneal`, the share of the budget left (1 -> 0, linear in CPU time), else 1."""
        if not self.anneal:
            return 1.0
        return max(0.0, 1.0 - (time.process_time() - self._cpu_start) / self.seconds)

    def scale_learning_rate(self, optimizer) -> None:
        """Scale this optimiser step's learning rate (the scheduler sets it again from its base after the step)."""
        factor = self.lr_factor()
        for group in optimizer.param_groups:
            group["lr"] *= factor

    def on_train_begin(self, args, state, control, **kwargs):
        self.start()

    def on_pre_optimizer_step(self, args, state, control, optimizer=None, **kwargs):
        self.scale_learning_rate(optimizer)

    def on_step_end(self, args, state, control, **kwargs):
        if self.step():
            control.should_training_stop = True


@dataclasses.dataclass
class Optimisation:
    """The optimiser settings every learned model shares."""

    batch_size: int
    learning_rate: float
    warmup_steps: int = 20
    max_grad_norm: float = 1.0
    # "anneal": warm-up, then times the share of the CPU budget left (a linear decay to 0 at the budget's end: what a
    # linear schedule over a known number of steps does); "constant": warm-up, then constant
    schedule: str = "anneal"

    def budget(self, seconds: float) -> TimeBudget:
        """The CPU-time budget of one training loop under this schedule."""
        return TimeBudget(seconds, anneal=self.schedule == "anneal")
