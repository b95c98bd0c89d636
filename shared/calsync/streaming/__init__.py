"""The streaming runtime (the ECS task): which mailboxes it watches on which connections (planner), keeping them
watched and turning notifications into inbound messages (runner), through its ports; its EWS client is an adapter
(``calsync.adapters.ews.streaming``) and ``calsync.bootstrap.streaming`` wires it."""
