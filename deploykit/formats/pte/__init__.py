"""ExecuTorch ``.pte`` programs: the plan, XNNPACK payloads, Core ML delegate payloads."""
