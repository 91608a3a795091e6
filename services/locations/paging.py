"""Moved to shared/modules/paging.py; this name stays for bench/crawl.py, which imports it."""

from shared.modules.paging import decode_cursor, encode_cursor, next_page_query

__all__ = ["decode_cursor", "encode_cursor", "next_page_query"]
