"""Converting Keras models into SWN members (`KerasMember`): reading the
graph, the SuperWeight layers that replace `Conv2D` / `Dense`, and the
compression of a trained model's kernels into the bank."""
