"""The X client of the noVNC end-to-end test: a window over the whole
screen with known content that answers to typing.

The background is red; a green square sits at the top left corner and a
blue one at the bottom right. Typed text shows in the middle, and once
it reads "wsbridge" the background turns yellow. It prints "ready" once
the window is on the screen.
"""
import sys
import tkinter as tk

RED, GREEN, BLUE, YELLOW = "#d02020", "#20c020", "#2020d0", "#e0e020"

width, height = int(sys.argv[1]), int(sys.argv[2])
root = tk.Tk()
root.overrideredirect(True)
root.geometry(f"{width}x{height}+0+0")
canvas = tk.Canvas(root, width=width, height=height, bg=RED, highlightthickness=0)
canvas.pack()
canvas.create_rectangle(0, 0, 100, 100, fill=GREEN, outline=GREEN)
canvas.create_rectangle(width - 100, height - 100, width, height, fill=BLUE, outline=BLUE)
text = canvas.create_text(width // 2, 60, text="", fill="white", font=("DejaVu Sans", 32))
typed = []


def key(event):
    if event.char and event.char.isprintable():
        typed.append(event.char)
    elif event.keysym == "BackSpace" and typed:
        typed.pop()
    s = "".join(typed)
    canvas.itemconfigure(text, text=s)
    canvas.configure(bg=YELLOW if s.endswith("wsbridge") else RED)


root.bind("<Key>", key)
root.update()
root.focus_force()
print("ready", flush=True)
root.mainloop()
