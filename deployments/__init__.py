"""How the flows are shipped and triggered: the local job, the receiver, the CLI, automations, AWS."""
