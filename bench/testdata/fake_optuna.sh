# Stands in for bench/optuna_reference.py in coordinator_bench's smoke
# test (run with --python=/bin/sh): checks the arguments the bench passes
# and prints the reference's one line with a fixed rate.
case "$*" in
  *"--storage sqlite:///"*"--trials "*"--reports "*) ;;
  *) echo "unexpected arguments: $*" >&2; exit 2 ;;
esac
echo "optuna trials=150 seconds=15.000 trials_per_s=10.00"
