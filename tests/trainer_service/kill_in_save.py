"""`duet train` with a fault injected: SIGKILL inside the checkpoint save of STEP, after the weights
are written and before optimizer state, trainer state and the marker. A kill timed from outside
cannot reliably land inside a save that lasts milliseconds; this one always does.

    python -m tests.trainer_service.kill_in_save STEP CONFIG [--key value ...]

The hook is a patch of `SFTTrainer.save_model` in this process only: the Trainer offers no callback
between writing the weights and writing the rest of a checkpoint.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from trl import SFTTrainer

from trainer_service.config import load_config, parse_overrides
from trainer_service.train import train


def kill_in_save_of(step: int) -> None:
    """Make every SFTTrainer in this process SIGKILL itself right after the weights of `step`."""
    save_weights = SFTTrainer.save_model

    def save_model(self: SFTTrainer, output_dir: str | None = None, _internal_call: bool = False) -> None:
        save_weights(self, output_dir, _internal_call)
        if _internal_call and self.state.global_step == step:  # inside the checkpoint save of `step`
            os.kill(os.getpid(), signal.SIGKILL)

    SFTTrainer.save_model = save_model


def main(argv: list[str]) -> None:
    step, config, *overrides = argv
    kill_in_save_of(int(step))
    train(load_config(Path(config), parse_overrides(overrides)))


if __name__ == "__main__":
    main(sys.argv[1:])
