//! Replicas and failover (upstream's `clusterSetPrimary`, `clusterHandleReplicaFailover`,
//! `clusterSendFailoverAuthIfNeeded`, manual failover, replica migration). Work item E of
//! docs/cluster-plan.md.
