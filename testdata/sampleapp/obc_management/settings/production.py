"""Production and staging: the same code, configured by the environment."""
from .base import *  # noqa: F401,F403
