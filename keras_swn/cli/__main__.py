"""`python -m keras_swn.cli`: the `keras-swn` command."""

from keras_swn.cli import run

if __name__ == "__main__":
    run()
