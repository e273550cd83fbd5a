"""A small shared test corpus: four documents of a fictional warehouse-robot company."""

from __future__ import annotations

from pathlib import Path

TOPICS = {
    "battery.md": (
        "# Battery\n\nThe AR7 robot uses a 48 V lithium battery pack.\n\n"
        "## Error E4711\n\nError code E4711 means the battery pack overheated. "
        "Let it cool for thirty minutes before charging again.\n"
    ),
    "returns.md": (
        "# Returns policy\n\nCustomers may return unused parts within 30 days of delivery. "
        "Refunds are issued to the original payment method within five business days.\n"
    ),
    "safety.md": (
        "# Safety\n\nAlways press the red emergency stop button before opening the chassis. "
        "Wear gloves when handling the gripper.\n"
    ),
    "network.md": (
        "# Networking\n\nThe robot connects to the warehouse Wi-Fi on the 5 GHz band. "
        "Configure the SSID in the fleet console under Settings > Network.\n"
    ),
}


def write_corpus(root: Path, topics: dict[str, str] = TOPICS) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, text in topics.items():
        (root / name).write_text(text, encoding="utf-8")
    return root
