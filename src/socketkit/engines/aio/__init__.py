"""The asyncio family: sessions as asyncio protocols on a loop (asyncio, uvloop)."""
