"""kubesvc.api"""
