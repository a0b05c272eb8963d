"""Measure your own models on your own tasks: a live shoot-out that writes the outcomes format.

``tasks`` (what is asked), ``graders`` (how answers score), ``runner`` (calls through the
gateway's backend layer), ``store`` (the resume journal), ``report`` (summary and plot).
"""
