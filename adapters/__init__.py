"""Framework adapters for :mod:`mpo`; :mod:`adapters.torch` is the PyTorch one.

Nothing is imported here, so ``import adapters`` never pulls in a framework.
"""
