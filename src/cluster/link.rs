//! Cluster bus links (upstream's `clusterLink`, `clusterAcceptHandler`,
//! `clusterConnectHandler`): the listener on `cluster-port` (port + 10000 by default),
//! inbound and outbound connections registered on the event loop, framing of the
//! `RCmb` messages, send queues. Work item D of docs/cluster-plan.md.
