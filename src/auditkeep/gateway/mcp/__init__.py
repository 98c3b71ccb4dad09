"""The MCP gateway: stands between an AI agent and its Model Context Protocol servers,
records every session, tool call, resource read and prompt, and applies guardrails.

The transports (:mod:`.stdio`, :mod:`.http`) move messages; a :class:`~.session.Session`
reads them and decides; events go to a sink (:mod:`.sink`) that never blocks the agent.
"""
