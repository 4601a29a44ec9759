"""Chats: conversations with the LLM over the caller's code and knowledge base."""
