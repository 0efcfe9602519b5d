# Run in the kernel before the notebook (see spec.toml). The grader calls the blocks through
# this adapter, so that both of the course's signatures grade: 2021 blocks take `training`;
# 2023 ones do not (or ignore it) and let BatchNormalization follow Keras' learning phase,
# which the 2023 tests set with set_learning_phase. Here the phase is set for the call only.
def __convgrade_with_phase__(name, *args, training=True, **kwargs):
    import inspect

    import tensorflow as tf

    fn = get_ipython().user_ns[name]  # noqa: F821 (IPython global)
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        params = {}
    if "training" in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        kwargs["training"] = training
    with tf.keras.backend.learning_phase_scope(int(bool(training))):
        return fn(*args, **kwargs)
