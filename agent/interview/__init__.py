"""The interviewing agent's deterministic parts: understanding answers (`understand`) and explaining terms
(`glossary`). No model and no network; the agent calls these before (or instead of) asking an LLM."""
