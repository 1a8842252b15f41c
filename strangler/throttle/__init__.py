"""A brake that protects the monolith (issue 17): copy, verify and sync call it between
chunks or rounds; it reads the monolith's health and waits, or stops the work, before the
monolith's owners notice.

:mod:`.health` reads the signals (one SQL query, plus an optional query of the operator's
own and a Prometheus query); :mod:`.brake` judges them against the limits and holds the
caller; :mod:`.control` is the manual pause every worker on every machine sees.
"""

from strangler.throttle.brake import NO_BRAKE, Brake, Decision, Limits, MonolithBrake, judge
from strangler.throttle.health import Health

__all__ = ["NO_BRAKE", "Brake", "Decision", "Health", "Limits", "MonolithBrake", "judge"]
