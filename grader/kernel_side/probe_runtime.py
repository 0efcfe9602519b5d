# Run in the kernel before the student's notebook. Defines __convgrade_call__(call_dir):
# read call.json (+ .npy inputs) from call_dir, call the student's function by name in the
# user namespace (so the last definition wins), write out.json (+ .npy outputs) back.
#
# Library functions are captured here, before any student code runs, so that casual
# monkeypatching (np.save, json.dump, open) does not break grading. This is convenience,
# not security: the grader treats everything this writes as untrusted data.
def __convgrade_install():
    import builtins, json, os, traceback
    import numpy as np

    _open, _isinstance, _len, _repr = builtins.open, builtins.isinstance, builtins.len, builtins.repr
    _write_array, _read_array = np.lib.format.write_array, np.lib.format.read_array
    _asarray, _ndarray, _generic = np.asarray, np.ndarray, np.generic
    _dumps, _loads, _join = json.dumps, json.loads, os.path.join
    _format_exception = traceback.format_exception
    user_ns = get_ipython().user_ns  # noqa: F821 (IPython global)
    MAX_DEPTH = 8

    def load(path):
        with _open(path, "rb") as fh:
            return _read_array(fh, allow_pickle=False)

    def save(path, arr):
        with _open(path, "wb") as fh:
            _write_array(fh, arr, allow_pickle=False)

    def decode(node, call_dir):
        if _isinstance(node, list):
            return [decode(x, call_dir) for x in node]
        if _isinstance(node, dict):
            if "$nd" in node:
                return load(_join(call_dir, node["$nd"]))
            if "$tuple" in node:
                return tuple(decode(x, call_dir) for x in node["$tuple"])
            if "$dict" in node:
                return {k: decode(v, call_dir) for k, v in node["$dict"]}
            if "$npscalar" in node:
                return load(_join(call_dir, node["$npscalar"]))[()]
            if "$keras_initializer" in node:  # e.g. the course's `lambda seed=0: constant(value=1)`
                import tensorflow as tf
                spec = dict(node["$keras_initializer"])
                return lambda seed=None, **_: tf.keras.initializers.get(dict(spec))
        return node

    def encode(value, call_dir, files, depth=0):
        if depth > MAX_DEPTH:
            return {"$unsupported": "structure nested too deeply"}
        if hasattr(value, "to_json") and hasattr(value, "count_params") and hasattr(value, "layers"):
            # A Keras model crosses as its architecture (Keras's own JSON config); the grader
            # rebuilds it with safe deserialization. Weights are not needed by any check.
            name = "o%d.json" % _len(files)
            files.append(name)
            with _open(_join(call_dir, name), "w", encoding="utf-8") as fh:
                fh.write(value.to_json())
            return {"$keras_model": name}
        if value is None or _isinstance(value, (bool, int, float, str)):
            if _isinstance(value, int) and not _isinstance(value, bool) and abs(value) > 2**53:
                return {"$unsupported": "int too large"}
            return value
        if _isinstance(value, (_ndarray, _generic)) or hasattr(value, "__array__") or hasattr(value, "numpy"):
            try:
                if not _isinstance(value, (_ndarray, _generic)) and hasattr(value, "numpy"):
                    value = value.numpy()
                arr = _asarray(value)
                if arr.dtype.kind not in "biufc":
                    return {"$unsupported": "array of dtype " + str(arr.dtype)}
                arr = arr.view(_ndarray) if _isinstance(arr, _ndarray) else arr
            except Exception as exc:  # a lying __array__ etc.
                return {"$unsupported": type(value).__name__ + " (" + _repr(exc)[:200] + ")"}
            name = "o%d.npy" % _len(files)
            files.append(name)
            save(_join(call_dir, name), arr)
            key = "$npscalar" if _isinstance(value, _generic) else "$nd"
            return {key: name}
        if _isinstance(value, tuple):
            return {"$tuple": [encode(x, call_dir, files, depth + 1) for x in value]}
        if _isinstance(value, list):
            return [encode(x, call_dir, files, depth + 1) for x in value]
        if _isinstance(value, dict):
            return {"$dict": [[k if _isinstance(k, (str, int)) else _repr(k), encode(v, call_dir, files, depth + 1)]
                              for k, v in value.items()]}
        return {"$unsupported": type(value).__module__ + "." + type(value).__qualname__}

    def one(fn, name, args, kwargs, call_dir, files):
        if fn is None or not callable(fn):
            return {"ok": False, "error": {"type": "NameError", "message": "%s is not defined" % name
                                           if fn is None else "%s is not a function" % name, "traceback": ""}}
        try:
            value = fn(*decode(args, call_dir), **{k: decode(v, call_dir) for k, v in kwargs.items()})
            return {"ok": True, "value": encode(value, call_dir, files)}
        except Exception as exc:
            tb = "".join(_format_exception(type(exc), exc, exc.__traceback__)[-6:])
            return {"ok": False, "error": {"type": type(exc).__name__, "message": str(exc)[:2000],
                                           "traceback": tb[-4000:]}}

    def call(call_dir):
        with _open(_join(call_dir, "call.json"), encoding="utf-8") as fh:
            spec = _loads(fh.read())
        name = spec["function"]
        fn = user_ns.get(name)
        query = spec.get("query")
        files = []
        if query:
            result = {"ok": True, "value": [n for n in query.get("defined", []) if n in user_ns]}
        elif "batch" in spec:  # many calls of one function in one round trip
            result = {"batch": [one(fn, name, c["args"], c["kwargs"], call_dir, files) for c in spec["batch"]]}
        else:
            result = one(fn, name, spec["args"], spec["kwargs"], call_dir, files)
        with _open(_join(call_dir, "out.json"), "w", encoding="utf-8") as fh:
            fh.write(_dumps(result))

    return call


__convgrade_call__ = __convgrade_install()
del __convgrade_install
