"""calibroute: calibrated compute for LLM traffic.

Route each request to the smallest model that solves it, with a task-appropriate
reasoning budget. Nothing heavy is imported here: estimators load on first use.
"""

from .config import Budget, ModelSpec, Portfolio, RouteSpec, load_portfolio
from .errors import CalibrouteError, ConfigError, InputError, UnknownModelError
from .router import Router
from .types import Classification, Decision, Hints, TaskClass

__version__ = "0.1.0"

__all__ = [
    "Budget",
    "CalibrouteError",
    "Classification",
    "ConfigError",
    "Decision",
    "Hints",
    "InputError",
    "ModelSpec",
    "Portfolio",
    "RouteSpec",
    "Router",
    "TaskClass",
    "UnknownModelError",
    "load_portfolio",
]
