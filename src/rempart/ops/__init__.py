"""Operations: the service's metrics (Prometheus) and its readiness checks.

Framework-free: the HTTP routes (:mod:`rempart.api.ops_routes`) serve what these compute.
"""
