#!/usr/bin/python3
"""The reference the coordinator must beat: Optuna 3 with SQLite storage,
driven through the same trial shape as sweepq's workers
(ask -> K intermediate reports -> tell).

Runs sequentially in one process: that is Optuna's fastest configuration on
SQLite (concurrent writers serialise on the file lock and retry).
Prints one line: optuna trials=<n> seconds=<s> trials_per_s=<r>
"""
import argparse
import time

import optuna


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--storage", required=True, help="sqlite:///PATH")
    parser.add_argument("--trials", type=int, default=150)
    parser.add_argument("--reports", type=int, default=10)
    args = parser.parse_args()

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(storage=args.storage, study_name="bench",
                                direction="maximize", load_if_exists=True)

    def one_trial(i: int) -> None:
        trial = study.ask()
        lr = trial.suggest_float("lr", 1e-4, 1e-2, log=True)
        for step in range(args.reports):
            trial.report(lr * step, step)
        study.tell(trial, lr)

    one_trial(0)  # warm-up: connection and schema set-up are not measured
    start = time.perf_counter()
    for i in range(args.trials):
        one_trial(i + 1)
    elapsed = time.perf_counter() - start
    print(f"optuna trials={args.trials} seconds={elapsed:.3f} "
          f"trials_per_s={args.trials / elapsed:.2f}")


if __name__ == "__main__":
    main()
