"""Federated joins: queries that join local tables (catalogues, user tables, uploads)
with a remote TAP service's table. The planner splits the query by source and pushes
each part where its data is; the join runs by size (the local side's key and position
columns uploaded to the remote in blocks, or the remote side pulled once); the rest
runs locally over the fetched rows."""

from taphouse.federation.planner import FederatedPlan, plan_federated
from taphouse.federation.query import FederatedQuery, mixes_sources, prepare_federated
from taphouse.federation.run import (
    FederationError,
    FederationLimits,
    FederationStats,
    choose_strategy,
    run_plan,
)

__all__ = ["FederatedPlan", "FederatedQuery", "FederationError", "FederationLimits",
           "FederationStats", "choose_strategy", "mixes_sources", "plan_federated",
           "prepare_federated", "run_plan"]
