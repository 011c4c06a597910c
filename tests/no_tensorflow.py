"""The first lines of a child Python in which TensorFlow is "not installed".

A ``sys.meta_path`` finder refuses every ``tensorflow*`` import, so the child
behaves as on a machine with JAX and no TensorFlow (the GPU machine), whatever
this machine has installed. Used by tests/test_backends.py and tests/jax/.
"""

BLOCK_TENSORFLOW = """
import importlib.abc
import sys


class NoTensorFlow(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.startswith("tensorflow"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, NoTensorFlow())
"""
