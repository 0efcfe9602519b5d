"""Small checking helpers used by public_tests.py.

These run inside the student's kernel and only give feedback in the notebook; they are not the
grader. A test case is a dict with the keys

    name      -- "datatype_check", "shape_check" or "equation_output_check"
    input     -- list of positional arguments for the function under test
    expected  -- the expected result
    error     -- message printed when the check fails

single_test() compares the whole result directly; multiple_test() also walks into tuples, lists
and dicts (for functions that return e.g. (A, cache)).
"""
import numpy as np

GREEN = "\033[92m"
RED = "\033[91m"
RESET = "\033[0m"

CHECKS = ("datatype_check", "shape_check", "equation_output_check")


def _same_type(expected, actual):
    if isinstance(expected, np.ndarray):
        return isinstance(actual, np.ndarray)
    if isinstance(expected, np.floating):
        return isinstance(actual, np.floating)
    if isinstance(expected, float):
        return isinstance(actual, (np.floating, float))
    if isinstance(expected, (np.integer, int)) and not isinstance(expected, bool):
        return isinstance(actual, (np.integer, int)) and not isinstance(actual, bool)
    return isinstance(actual, type(expected))


def datatype_check(expected, actual, recursive=False):
    """True when actual has the type of expected (recursively for containers)."""
    if recursive and isinstance(expected, (tuple, list)):
        return (isinstance(actual, (tuple, list)) and len(actual) == len(expected)
                and all(datatype_check(e, a, True) for e, a in zip(expected, actual)))
    if recursive and isinstance(expected, dict):
        return (isinstance(actual, dict) and set(actual) == set(expected)
                and all(datatype_check(expected[k], actual[k], True) for k in expected))
    return _same_type(expected, actual)


def shape_check(expected, actual, recursive=False):
    """True when arrays have equal shapes (recursively for containers); other values pass."""
    if recursive and isinstance(expected, (tuple, list)):
        return (isinstance(actual, (tuple, list)) and len(actual) == len(expected)
                and all(shape_check(e, a, True) for e, a in zip(expected, actual)))
    if recursive and isinstance(expected, dict):
        return (isinstance(actual, dict) and set(actual) == set(expected)
                and all(shape_check(expected[k], actual[k], True) for k in expected))
    if isinstance(expected, np.ndarray):
        return np.shape(actual) == expected.shape
    return True


def equation_output_check(expected, actual, recursive=False, rtol=1e-5, atol=1e-8):
    """True when values agree (np.allclose for numbers and arrays, == otherwise)."""
    if recursive and isinstance(expected, (tuple, list)):
        return (isinstance(actual, (tuple, list)) and len(actual) == len(expected)
                and all(equation_output_check(e, a, True, rtol, atol)
                        for e, a in zip(expected, actual)))
    if recursive and isinstance(expected, dict):
        return (isinstance(actual, dict) and set(actual) == set(expected)
                and all(equation_output_check(expected[k], actual[k], True, rtol, atol)
                        for k in expected))
    if isinstance(expected, (np.ndarray, np.number, float, int)) and not isinstance(expected, bool):
        try:
            actual_arr = np.asarray(actual, dtype=float)
        except (TypeError, ValueError):
            return False
        expected_arr = np.asarray(expected, dtype=float)
        return actual_arr.shape == expected_arr.shape and bool(
            np.allclose(actual_arr, expected_arr, rtol=rtol, atol=atol))
    return expected == actual


def _run(test_cases, target, recursive):
    passed = 0
    for case in test_cases:
        name = case["name"]
        if name not in CHECKS:
            raise ValueError("unknown check " + repr(name))
        check = {"datatype_check": datatype_check, "shape_check": shape_check,
                 "equation_output_check": equation_output_check}[name]
        try:
            result = target(*case["input"])
        except Exception as exc:  # the student's function crashed
            print(RED + "Error: " + case["error"] + " (" + type(exc).__name__ + ": "
                  + str(exc) + ")" + RESET)
            continue
        if check(case["expected"], result, recursive):
            passed += 1
        else:
            print(RED + "Error: " + case["error"] + RESET)
            print("Expected:", case["expected"])
            print("Got:     ", result)
    failed = len(test_cases) - passed
    if failed == 0:
        print(GREEN + "All tests passed!" + RESET)
    else:
        print(GREEN + str(passed) + " tests passed" + RESET)
        print(RED + str(failed) + " tests failed" + RESET)
        raise AssertionError("Not all tests were passed for {}. Check your equations and avoid "
                             "using global variables inside the function.".format(
                                 getattr(target, "__name__", "the function")))


def single_test(test_cases, target):
    """Run every test case against target, comparing the result as a whole."""
    _run(test_cases, target, recursive=False)


def multiple_test(test_cases, target):
    """Like single_test, but walks into tuples, lists and dicts returned by target."""
    _run(test_cases, target, recursive=True)
