// The commented sweep file `sweepq example-sweep` prints. Kept valid by
// tests/client/example_sweep_test.cc, which expands it.
#ifndef SWEEPQ_CLIENT_EXAMPLE_SWEEP_H_
#define SWEEPQ_CLIENT_EXAMPLE_SWEEP_H_

namespace sweepq::client {

inline constexpr char kExampleSweep[] =
    R"(# A sweepq sweep: a base run config plus the parameters to sweep.
# Preview the runs it expands into:  sweepq submit this.yaml --dry-run
# Submit it:                         sweepq submit this.yaml
# Rank the results:                  sweepq board --sweep ID
name: radam-vs-adamw

# grid: every combination of the `values` below (the last varies fastest).
# random: `run_cap` draws, using `distribution` entries too.
method: grid

# What the leaderboard ranks this sweep's runs by.
metric: {name: val_f1, goal: maximize}

# Tries per run before it stays FAILED (a lost worker or a retryable error
# requeues it).
max_attempts: 3

# The config every run starts from (fields of proto/sweepq/v1/run_config.proto,
# snake_case). Unknown or mistyped keys are rejected with their path.
config:
  data:
    dataset: mask          # the data set name workers advertise (--data mask=DIR)
    layout: mask
    split: holdout
    val_ratio: 0.2
    age_bounds: [30, 60]   # age bands <30, 30-59, >=60
  crop:
    enabled: true          # face crop before resizing
  augment:
    hflip: 0.5
  model:
    name: resnet18
    multi_head: true       # mask x gender x age heads -> 18 classes
  loss:
    name: focal
  optimizer:
    lr: 0.0003
    weight_decay: 0.0001
  scheduler:
    name: cosine
  early_stopping:
    metric: val_f1
    patience: 3
  train:
    epochs: 12
    batch_size: 64
  seed: 42

# Swept parameters: dotted paths into the config above.
#   value: X              the same for every run (documents the choice)
#   values: [A, B, ...]   one run per value (grid) or a uniform pick (random)
#   distribution: uniform | log_uniform | int_uniform, min: A, max: B
#                         (random only)
parameters:
  optimizer.name:
    values: [radam, adamw]
  seed:
    values: [1, 2]
)";

}  // namespace sweepq::client

#endif  // SWEEPQ_CLIENT_EXAMPLE_SWEEP_H_
