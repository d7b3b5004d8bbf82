"""kubesvc.storage"""
