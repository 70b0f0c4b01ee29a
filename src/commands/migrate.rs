//! MIGRATE and RESTORE-ASKING (upstream's `cluster.c` `migrateCommand`,
//! `restoreCommand`): moving keys to another node, as `redis-cli --cluster reshard` does.
//! Work item F of docs/cluster-plan.md.
