"""Server-rendered web views; thin: authorize, validate, call one service or selector, render."""
