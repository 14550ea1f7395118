"""What the project writes, and how: atomic files (`atomic`), the ownership record of a folder it fills
(`ownership`), the mark on its figures (`figure_marks`), where outputs may go (`output_paths`), folder
locks (`locks`) and the one-line text of disk and permission faults (`faults`)."""
