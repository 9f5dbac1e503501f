"""Conversations with VisLingInstruct: the chat engine (:mod:`.engine`), the terminal
(``python -m lavis_vislinginstruct.chat``) and what it shares with the web demo (:mod:`.launch`)."""

from .engine import COLUMNS, ChatEngine, Conversation, Decoding, Event, Turn

__all__ = ["COLUMNS", "ChatEngine", "Conversation", "Decoding", "Event", "Turn"]
