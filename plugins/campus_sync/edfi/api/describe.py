"""How a running local Ed-Fi API is shown to a user (the CLI and the demo print the same)."""

from __future__ import annotations


def describe(info: dict) -> str:
    """What `edfi api start` and the demo print of a running local Ed-Fi API."""
    return (f"local Ed-Fi API (a local implementation of the Ed-Fi API client contract, for development and tests)\n"
            f"  base URL:        {info['base_url']}\n"
            f"  token URL:       {info['oauth_url']}\n"
            f"  data URL:        {info['data_url']}/ed-fi/...   (routes: {info['routes']}; "
            f"Ed-Fi Data Standard {info.get('data_standard', '?')})\n"
            f"  client key:      {info['key']}\n"
            f"  client secret:   {info['secret']}\n"
            f"  port {info['port']}, pid {info['pid']}; stop: campus-sync edfi api stop")
