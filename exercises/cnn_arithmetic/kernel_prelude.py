# Run in the kernel before the notebook (see spec.toml). The block functions of this exercise take
# a Keras tensor and return one; the grader calls them through this adapter, which wraps the
# block in a Model on an Input of the given shape. The Model crosses back as its JSON
# architecture, which the grader rebuilds (safe mode) and measures itself.
def __convgrade_block_model__(name, input_shape, **kwargs):
    import tensorflow as tf

    fn = get_ipython().user_ns[name]  # noqa: F821 (IPython global)
    X = tf.keras.Input(shape=tuple(input_shape))
    return tf.keras.Model(X, fn(X, **kwargs))
