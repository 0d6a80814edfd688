"""Hindsight logging: carry new ``flor.log`` statements into past versions of a script."""
