"""Checks of user input shared by the public entry points ("Received: x=..." errors).

Arguments, configs of saved models and weights files. What every entry point
does with each bad input is listed in docs/bad_input.md.
"""

import argparse
import numbers
import weakref


def _is_number(value):
    # numbers.Real also covers NumPy scalars such as np.float32 (np.bool_ is not one).
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_positive_int(name, value):
    """Returns `value` as an `int`; raises a ValueError unless it is an integer >= 1.

    NumPy integers are accepted (and converted), floats and booleans are not.
    """
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
        raise ValueError(
            f"Argument `{name}` must be a positive integer. Received: {name}={value!r}"
        )
    return int(value)


def positive_int_argument(text):
    """argparse `type` of the command-line tools: `text` as an integer >= 1.

    The rule is `check_positive_int`'s; argparse puts the option's name before
    the message ("argument --runs: must be a positive integer, got '0'").
    """
    try:
        return check_positive_int("value", int(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None


def check_probability(name, value, low_inclusive=False):
    """Raises a ValueError unless `0 < value <= 1` (or `0 <= value <= 1`)."""
    ok = _is_number(value) and (
        (0.0 <= value <= 1.0) if low_inclusive else (0.0 < value <= 1.0)
    )
    if not ok:
        interval = "[0, 1]" if low_inclusive else "(0, 1]"
        raise ValueError(
            f"Argument `{name}` must be a number in {interval}. Received: {name}={value!r}"
        )


def check_non_negative(name, value):
    if not _is_number(value) or not 0.0 <= value < float("inf"):
        raise ValueError(
            f"Argument `{name}` must be a finite number >= 0. Received: {name}={value!r}"
        )


# ----------------------------------------------------------------- saved models


def config_error(cls, config, error):
    """A short ValueError for a saved layer config this version cannot build.

    `keras.layers.Layer.from_config` wraps any error of the constructor in a
    TypeError holding the whole config, and each enclosing model wraps it again,
    so the cause (e.g. "Unrecognized keyword arguments passed to GatedDense:
    {'gate_temperature': 2.0}") ends up after pages of config. This keeps the
    cause and names the layer.
    """
    from keras_condcomp import __version__

    cause = error.__context__ if isinstance(error.__context__, Exception) else error
    name = config.get("name") if isinstance(config, dict) else None
    return ValueError(
        f"Cannot create {cls.__name__} {name!r} from its saved config with keras_condcomp "
        f"{__version__} (was the model saved by another version?): "
        f"{type(cause).__name__}: {cause}"
    )


# Layer -> (weak reference to the weights store of its last load, error or None).
_LAST_LOAD = weakref.WeakKeyDictionary()


class SavedModelErrorsMixin:
    """Clear errors when a saved layer cannot be rebuilt or its weights not loaded.

    `from_config`: a config this version cannot build raises `config_error`'s
    short ValueError instead of Keras' TypeError holding the whole config.

    `load_own_variables`: reports why a layer's weights did not load, not
    "received 0 variables". A gated layer is reachable twice in a
    `CondCompModel` (through the network and through
    `CondCompModel.gated_layers`); its weights are saved at the first path.
    When loading them fails (e.g. a kernel of another shape), Keras tries the
    layer again at the second path, where the file holds nothing, and reports
    that second error ("expected 6 variables, but received 0"). This re-raises
    the first error there instead (and skips the empty second path when the
    first load succeeded).
    """

    @classmethod
    def from_config(cls, config):
        try:
            return super().from_config(config)
        except TypeError as error:  # Keras' wrapper of any constructor error
            raise config_error(cls, config, error) from None

    def load_own_variables(self, store):
        previous = _LAST_LOAD.get(self)
        if (
            previous is not None
            and previous[0]() is store
            and not list(store.keys())
        ):
            if previous[1] is None:
                return
            raise previous[1]
        try:
            store_ref = weakref.ref(store)
        except TypeError:  # e.g. a plain dict: no retry to recognize
            store_ref = None
        try:
            super().load_own_variables(store)
        except Exception as error:
            if store_ref is not None:
                _LAST_LOAD[self] = (store_ref, error)
            raise
        if store_ref is not None:
            _LAST_LOAD[self] = (store_ref, None)
