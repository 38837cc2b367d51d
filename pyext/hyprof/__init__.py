"""hyprof"""
