"""Shared command-line plumbing for the download scripts."""

import argparse


def parser(description):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--out", default="data", help="folder for downloads and converted data")
    return p
