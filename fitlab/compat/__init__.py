"""Keras 2's removed training API on Keras 3, with Keras 2's meaning.

A 2018 script runs with its imports changed::

    from fitlab.compat import ImageDataGenerator, SGD, enable_legacy_methods
    enable_legacy_methods()          # model.fit_generator & co. exist again
    H = model.fit_generator(gen, steps_per_epoch=..., validation_data=val, ...)
    plt.plot(H.history["acc"])       # 2018 key names still resolve

What each name does, and where it follows Keras 2:

* :func:`fit_generator`, :func:`evaluate_generator`, :func:`predict_generator`
  take every Keras 2 argument with its Keras 2 meaning. They drive
  ``train_on_batch`` / ``test_on_batch`` / ``predict_on_batch`` through
  :func:`fitlab.engine.run_epochs` (``fit``'s epoch loop written out), so
  callbacks, the progress bar and the ``History`` behave as in ``fit``, and a
  generator is never handed to Keras 3's ``fit`` -- which is what makes them
  immune to Keras 3's *finite generator trap* (``fit`` on a finite generator
  trains on all its batches in epoch 1, then on only the two batches it peeked
  at in every later epoch).
* :func:`enable_legacy_methods` puts the three on ``keras.Model``.
* :func:`SGD` takes ``lr`` and ``decay`` (per batch, as Keras 2 counted).
* :class:`ImageDataGenerator` with ``.flow`` is built on
  :func:`fitlab.make_augmentation` (Keras 2's names *and units*).
* :func:`legacy_history` lets ``history["acc"]`` find ``"accuracy"``.

The reference for "Keras 2's meaning" is Keras 2 itself: ``tests/test_compat.py``
runs each scenario through ``tf_keras`` 2.21's own ``fit_generator`` and through
this module and compares what a user can observe. Where Keras 2.2 (the 2018
docs) and ``tf_keras`` 2.21 disagree, or Keras 2 did something no one wants,
the function's docstring says which way this module goes. In short:

* Followed: ``tf_keras`` 2.21 for which batches train and validate, epoch
  numbering, History keys, stopping when a generator runs dry (after the
  partial epoch), a validation generator that runs dry (later epochs go
  unvalidated), ``Sequence`` passes (``random.shuffle`` per epoch, a fresh pass
  cut to ``steps_per_epoch``, one pass then stop when it asks for more),
  ``class_weight`` times sample weights.
* Keras 2.2 (the 2018 docs) over ``tf_keras`` 2.21: ``workers=0`` runs the
  generator on the calling thread (2.21 refuses it); ``steps_per_epoch`` /
  ``validation_steps`` are required for a *generator* (2.21 drains it in epoch
  1, then records an empty epoch of zeros); validation batches are
  consecutive (2.21 throws away the batches its prefetch read ahead, so epoch
  2 validates on batches 53, 54 instead of 52, 53); a *list* batch given to
  ``predict_generator`` is the inputs of a multi-input model.
* Neither: an epoch that gets no batch at all is not recorded; a generator
  with ``use_multiprocessing=True`` runs on a thread, with a warning (Keras 2
  copied it into each process and repeated batches); ``workers > 1`` on a
  generator uses one thread (a generator runs on one thread at a time; Keras
  2's extra threads waited on a lock and could reorder batches);
  ``class_weight`` keys need not be ``0 … n-1``, only cover the classes seen;
  History values are the epoch's batch values averaged over its rows, as
  :func:`fitlab.train_on_batches` reports them (Keras 2 accumulated each
  metric instead: the same numbers for the loss and for ``metrics`` that are
  means over rows, such as ``accuracy``; not for ``weighted_metrics`` with
  sample or class weights that vary, nor for ``Precision``, ``AUC`` and other
  metrics that are not means).

The modules, one job each: :mod:`~fitlab.compat.generator_methods` (the three
functions and :func:`enable_legacy_methods`), :mod:`~fitlab.compat.feeders`
(Keras 2's generator and ``Sequence`` readers, over
:class:`fitlab.engine.BatchStream`), :mod:`~fitlab.compat.batch_rules` (what a
batch may be, ``class_weight``), :mod:`~fitlab.compat.image`
(:class:`ImageDataGenerator`) and :mod:`~fitlab.compat.keras2` (:func:`SGD`,
:func:`legacy_history`).
"""

from fitlab.compat.generator_methods import (
    enable_legacy_methods,
    evaluate_generator,
    fit_generator,
    predict_generator,
)
from fitlab.compat.image import ImageDataGenerator, NumpyArrayIterator
from fitlab.compat.keras2 import SGD, legacy_history

__all__ = [
    "SGD",
    "ImageDataGenerator",
    "NumpyArrayIterator",
    "enable_legacy_methods",
    "evaluate_generator",
    "fit_generator",
    "legacy_history",
    "predict_generator",
]
