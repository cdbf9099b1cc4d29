"""What the chapters show: Markdown tables (`tables`), spread statistics (`stats`), saved figures (`figures`)."""
