"""Training an AdaIN decoder (``stylize train``): the paper's losses on a frozen encoder.

  losses.py       content and style losses as functions; DecoderLoss, the module a step calls
  data.py         random (content, style) crop pairs, resumable and split across processes
  loop.py         TrainConfig, Trainer (Adam, lr decay, autocast, checkpoints, signals), train()
  checkpoint.py   the output folder: model files in the registry's layout, state, losses.csv
  samples.py      the content × style grid written every K steps
  distributed.py  torchrun processes (DistributedDataParallel; gloo on the CPU, NCCL on GPUs)

Nothing here parses arguments; ``stream/cli/train.py`` is the command.
"""
