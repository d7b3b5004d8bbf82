"""kubesvc.controllers"""
