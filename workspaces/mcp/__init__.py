"""A Model Context Protocol server over the panel service: panels as tools and resources for AI agents."""
