"""The served resources live in `kubesvc.api.resources` (clients need the table too)."""

from kubesvc.api.resources import *  # noqa: F403
from kubesvc.api.resources import BY_KIND, BY_PLURAL, RESOURCES, Resource  # noqa: F401
