"""How the flows are shipped and triggered: local job, receiver, CLI, automations, AWS."""
