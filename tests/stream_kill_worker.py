"""Run by tests/test_streaming.py under torchrun: examples/run_pretrain.py with its arguments, every process killed
(SIGKILL, as a node failure or a scheduler would) when it starts the optimiser update after `KILL_AFTER_STEP`."""

import os
import signal
import sys

from modeling_asda.training.pretraining import AsdaPretrainingTrainer, parse_arguments, run


KILL_AFTER_STEP = int(os.environ["KILL_AFTER_STEP"])
training_step = AsdaPretrainingTrainer.training_step


def killed_training_step(trainer, *args, **kwargs):
    if trainer.state.global_step == KILL_AFTER_STEP:
        os.kill(os.getpid(), signal.SIGKILL)
    return training_step(trainer, *args, **kwargs)


if __name__ == "__main__":
    AsdaPretrainingTrainer.training_step = killed_training_step
    run(*parse_arguments(sys.argv[1:]))
